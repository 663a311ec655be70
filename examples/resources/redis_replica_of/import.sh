# A Replica Of is imported by the uid of its destination database. The source
# URLs with credentials are imported into source_uris.
terraform import redis_replica_of.orders_eu 3
