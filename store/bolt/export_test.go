package bolt

// OpenBatch opens a store whose chat writes use bbolt's db.Batch.
func OpenBatch(dir string) (*Store, error) { return open(dir, commitBatch) }

// OpenSerial opens a store with one db.Update per write.
func OpenSerial(dir string) (*Store, error) { return open(dir, commitSerial) }
