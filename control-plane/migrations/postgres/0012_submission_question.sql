-- The quiz code question a graded quiz submission answers. A quiz attempt
-- may cite an accepted submission only for the question it was graded
-- against, so one easy answer cannot stand for every code question.
ALTER TABLE submissions ADD COLUMN question_id TEXT;
