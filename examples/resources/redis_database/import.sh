# A database is imported by its uid.
terraform import redis_database.cache 3
