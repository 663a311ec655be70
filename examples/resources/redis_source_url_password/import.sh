# Imported by the uid of the database; the current password and the keepers
# it was regenerated with are read from its source URL, without regenerating
# it: a configuration with the same keepers plans no change.
terraform import redis_source_url_password.orders 3
