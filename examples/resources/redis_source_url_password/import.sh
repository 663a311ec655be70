# Imported by the uid of the database; the current password is read from its
# source URL, without regenerating it.
terraform import redis_source_url_password.orders 3
