-- Dataset item ids are a project's own: two projects may both have an item "q1", and a 409
-- no longer tells one project that another's item exists. An item's project is always its
-- dataset's (and an experiment item's its experiment's), set by trigger whatever inserts it.
ALTER TABLE dataset_items ADD COLUMN project_id uuid;
UPDATE dataset_items i SET project_id = d.project_id FROM datasets d WHERE d.id = i.dataset_id;
ALTER TABLE dataset_items ALTER COLUMN project_id SET NOT NULL;
ALTER TABLE dataset_items ADD CONSTRAINT dataset_items_project_fkey
    FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE;

ALTER TABLE experiment_items ADD COLUMN project_id uuid;
UPDATE experiment_items ei SET project_id = e.project_id FROM experiments e WHERE e.id = ei.experiment_id;
ALTER TABLE experiment_items ALTER COLUMN project_id SET NOT NULL;

ALTER TABLE experiment_items DROP CONSTRAINT experiment_items_dataset_item_id_fkey;
ALTER TABLE dataset_items DROP CONSTRAINT dataset_items_pkey;
ALTER TABLE dataset_items ADD PRIMARY KEY (project_id, id);
ALTER TABLE experiment_items ADD CONSTRAINT experiment_items_dataset_item_fkey
    FOREIGN KEY (project_id, dataset_item_id) REFERENCES dataset_items(project_id, id) ON DELETE CASCADE;

CREATE FUNCTION dataset_items_project() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.project_id := (SELECT project_id FROM datasets WHERE id = NEW.dataset_id);
    RETURN NEW;
END $$;
CREATE TRIGGER dataset_items_project BEFORE INSERT OR UPDATE OF dataset_id, project_id ON dataset_items
    FOR EACH ROW EXECUTE FUNCTION dataset_items_project();

CREATE FUNCTION experiment_items_project() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.project_id := (SELECT project_id FROM experiments WHERE id = NEW.experiment_id);
    RETURN NEW;
END $$;
CREATE TRIGGER experiment_items_project BEFORE INSERT OR UPDATE OF experiment_id, project_id ON experiment_items
    FOR EACH ROW EXECUTE FUNCTION experiment_items_project();
