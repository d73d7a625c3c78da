-- run on the target after visits is swapped in, in one transaction
CREATE INDEX IF NOT EXISTS visits_by_patient ON visits (patient_id);
CREATE INDEX IF NOT EXISTS visits_by_date ON visits (visit_date);
