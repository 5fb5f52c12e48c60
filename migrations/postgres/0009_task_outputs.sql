-- Task outputs (XCom): the small JSON value a try published, kept per try.
ALTER TABLE task_tries ADD COLUMN output TEXT;
