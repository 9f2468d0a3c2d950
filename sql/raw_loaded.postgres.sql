-- After a bulk load: summarize the new pages in the BRIN index (until then PostgreSQL scans
-- every unsummarized page for a batch) and refresh the planner's statistics.
SELECT brin_summarize_new_values('raw_ratings_batch');
ANALYZE raw_ratings;
