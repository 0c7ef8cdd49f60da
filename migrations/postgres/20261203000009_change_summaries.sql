-- Changes told in the services' own terms: each stored file version keeps its change's
-- one-line summary ("+2 rules in inet filter input") and the structured changes (a line
-- per change: kind, scope, added, removed, changed, tab-separated), so History serves
-- them without reading git. NULL for versions recorded before summaries were kept.
ALTER TABLE config_file_changes ADD COLUMN change_summary TEXT, ADD COLUMN change_detail TEXT;
