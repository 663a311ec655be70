// Package layout is how the logical databases of a database run by
// redis-replicad are laid out, which both the process manager (it
// configures them) and the replication engine (it writes checkpoints) rely
// on.
package layout

// CheckpointDB is the logical database that holds the applied offset of each
// source on a Replica Of destination. It is one past the 16 that applications
// (and sources) use, so the databases map one to one and the checkpoint never
// mixes with replicated keys.
const CheckpointDB = 16

// Databases is how many logical databases each redis-server offers.
const Databases = CheckpointDB + 1

// AppUser is the user applications log in as on every database (the
// password authentication_redis_pass): the process manager sets its rules,
// and the replication engine waits for them before it lets a destination
// take writes from its master link.
const AppUser = "default"
