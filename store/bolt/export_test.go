package bolt

import bbolt "go.etcd.io/bbolt"

// OpenBatch opens a store whose chat writes use bbolt's db.Batch.
func OpenBatch(dir string) (*Store, error) { return open(dir, commitBatch) }

// OpenSerial opens a store with one db.Update per write.
func OpenSerial(dir string) (*Store, error) { return open(dir, commitSerial) }

// PutRawChat writes a chat record as it is, with its meta (for records in
// an older format).
func PutRawChat(s *Store, id, storyID string, record []byte) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketChats).Put([]byte(id), record); err != nil {
			return err
		}
		return tx.Bucket(bucketChatMeta).Put([]byte(id), []byte(`{"s":"`+storyID+`","t":"active"}`))
	})
}
