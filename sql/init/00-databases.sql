-- Run once by the postgres image on first start (docker-entrypoint-initdb.d): the platform's
-- three stores. The stores would also create themselves on first use; creating them here lets
-- the database user of a deployment be one that cannot create databases.
CREATE DATABASE recsys_raw;
CREATE DATABASE recsys_lake;
CREATE DATABASE recsys_features;
