package replication

// MaxMergedInputs is maxMergedInputs for the external tests.
const MaxMergedInputs = maxMergedInputs
