// Command check is a smoke test for a MongoDB-wire server (normally the
// embedded FerretDB started by ../start.sh). It exercises the operations a
// document store with optimistic concurrency needs and prints one line per
// probe: OK, UNSUPPORTED (server rejected it) or FAIL (wrong result).
//
// Exit status is non-zero if a core probe fails (insert, version-filtered
// updateOne / findOneAndUpdate with $inc, upsert, createIndexes, unique
// index, read back). Non-core probes are informational.
//
//	go run ./check -uri "$MONGODB_TEST_URI"
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

type doc struct {
	ID      string `bson:"_id"`
	Version int64  `bson:"version"`
	Name    string `bson:"name,omitempty"`
	Created string `bson:"created,omitempty"`
	Counter int64  `bson:"counter,omitempty"`
}

var coreFailed bool

// unsupported marks an error that means "the server does not do this".
type unsupported struct{ error }

func asUnsupported(err error) error {
	if err == nil {
		return nil
	}
	return unsupported{err}
}

func report(core bool, name string, err error) {
	var ce mongo.CommandError
	var ue unsupported
	switch {
	case err == nil:
		fmt.Printf("OK           %s\n", name)
	case errors.As(err, &ue) || errors.As(err, &ce) && (ce.Code == 238 || ce.Code == 115 || ce.Code == 59 || ce.Code == 20):
		// 238 NotImplemented, 115 CommandNotSupported, 59 CommandNotFound, 20 IllegalOperation
		fmt.Printf("UNSUPPORTED  %s: %v\n", name, err)
		if core {
			coreFailed = true
		}
	default:
		fmt.Printf("FAIL         %s: %v\n", name, err)
		if core {
			coreFailed = true
		}
	}
}

func main() {
	uri := flag.String("uri", os.Getenv("MONGODB_TEST_URI"), "MongoDB URI (default $MONGODB_TEST_URI)")
	concurrency := flag.Bool("race", true, "run the concurrent optimistic-update probe")
	flag.Parse()
	if *uri == "" {
		fmt.Fprintln(os.Stderr, "check: -uri or MONGODB_TEST_URI required")
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	client, err := mongo.Connect(options.Client().ApplyURI(*uri).SetTimeout(20 * time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	defer client.Disconnect(context.Background())

	report(true, "ping", client.Ping(ctx, nil))

	var bi bson.M
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&bi); err == nil {
		fmt.Printf("INFO         buildInfo: version=%v ferretdb=%v\n", bi["version"], bi["ferretdb"])
	}

	db := client.Database(fmt.Sprintf("mongotest_check_%d", time.Now().UnixNano()))
	defer db.Drop(context.Background())
	coll := db.Collection("stories")

	// --- insert / duplicate _id ---
	_, err = coll.InsertOne(ctx, doc{ID: "s1", Version: 1, Name: "first"})
	report(true, "insertOne", err)

	_, err = coll.InsertOne(ctx, doc{ID: "s1", Version: 1})
	if mongo.IsDuplicateKeyError(err) {
		err = nil
	} else if err == nil {
		err = errors.New("duplicate _id accepted")
	}
	report(true, "insertOne duplicate _id -> E11000 (mongo.IsDuplicateKeyError)", err)

	// --- updateOne with {_id, version} filter ---
	res, err := coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: "s1"}, {Key: "version", Value: 1}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "name", Value: "second"}}}, {Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}})
	if err == nil && (res.MatchedCount != 1 || res.ModifiedCount != 1) {
		err = fmt.Errorf("matched=%d modified=%d, want 1/1", res.MatchedCount, res.ModifiedCount)
	}
	report(true, "updateOne {_id,version} $set+$inc (match)", err)

	res, err = coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: "s1"}, {Key: "version", Value: 1}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}})
	if err == nil && res.MatchedCount != 0 {
		err = fmt.Errorf("stale version matched %d docs", res.MatchedCount)
	}
	report(true, "updateOne {_id,version} stale version -> matched 0", err)

	// --- findOneAndUpdate with version filter + $inc ---
	var got doc
	err = coll.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: "s1"}, {Key: "version", Value: 2}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}, {Key: "$set", Value: bson.D{{Key: "name", Value: "third"}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&got)
	if err == nil && (got.Version != 3 || got.Name != "third") {
		err = fmt.Errorf("got %+v, want version 3 name third", got)
	}
	report(true, "findOneAndUpdate {_id,version} $inc returnDocument=after", err)

	err = coll.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: "s1"}, {Key: "version", Value: 2}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		err = nil
	} else if err == nil {
		err = errors.New("stale version matched")
	}
	report(true, "findOneAndUpdate stale version -> ErrNoDocuments", err)

	_, _ = coll.InsertOne(ctx, doc{ID: "p1", Version: 7, Name: "p"})
	got = doc{}
	err = coll.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: "p1"}, {Key: "version", Value: 7}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&got)
	if err == nil && got.Version != 7 {
		err = fmt.Errorf("before-image version %d, want 7", got.Version)
	}
	report(false, "findOneAndUpdate returnDocument=before", err)

	got = doc{}
	err = coll.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: "p1"}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After).SetProjection(bson.D{{Key: "version", Value: 1}})).Decode(&got)
	if err == nil && (got.Version != 9 || got.Name != "") {
		err = fmt.Errorf("got %+v, want version 9 and no name", got)
	}
	report(false, "findOneAndUpdate with projection (fields)", err)

	// --- replaceOne with version filter ---
	_, _ = coll.InsertOne(ctx, doc{ID: "r1", Version: 4, Name: "orig"})
	rres, err := coll.ReplaceOne(ctx,
		bson.D{{Key: "_id", Value: "r1"}, {Key: "version", Value: 4}},
		doc{ID: "r1", Version: 5, Name: "replaced"})
	if err == nil && rres.ModifiedCount != 1 {
		err = fmt.Errorf("modified=%d", rres.ModifiedCount)
	}
	if err == nil {
		got = doc{}
		err = coll.FindOne(ctx, bson.D{{Key: "_id", Value: "r1"}}).Decode(&got)
		if err == nil && (got.Version != 5 || got.Name != "replaced") {
			err = fmt.Errorf("after replace: %+v", got)
		}
	}
	report(false, "replaceOne {_id,version}", err)

	// --- upserts with $setOnInsert ---
	upd := bson.D{
		{Key: "$setOnInsert", Value: bson.D{{Key: "created", Value: "once"}}},
		{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}},
	}
	res, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "u1"}}, upd, options.UpdateOne().SetUpsert(true))
	if err == nil && (res.UpsertedCount != 1 || res.UpsertedID != "u1") {
		err = fmt.Errorf("upserted=%d id=%v", res.UpsertedCount, res.UpsertedID)
	}
	report(true, "updateOne upsert=true $setOnInsert+$inc (insert path)", err)

	upd2 := bson.D{
		{Key: "$setOnInsert", Value: bson.D{{Key: "created", Value: "twice"}}},
		{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}},
	}
	res, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "u1"}}, upd2, options.UpdateOne().SetUpsert(true))
	if err == nil {
		got = doc{}
		err = coll.FindOne(ctx, bson.D{{Key: "_id", Value: "u1"}}).Decode(&got)
		if err == nil && (got.Created != "once" || got.Version != 2 || res.MatchedCount != 1 || res.UpsertedCount != 0) {
			err = fmt.Errorf("got %+v matched=%d upserted=%d; want created=once version=2", got, res.MatchedCount, res.UpsertedCount)
		}
	}
	report(true, "updateOne upsert=true (update path, $setOnInsert ignored)", err)

	got = doc{}
	err = coll.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: "u2"}, {Key: "version", Value: 0}},
		bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "created", Value: "fau"}}}, {Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&got)
	if err == nil && (got.ID != "u2" || got.Version != 1 || got.Created != "fau") {
		err = fmt.Errorf("got %+v", got)
	}
	report(true, "findOneAndUpdate upsert=true with {_id,version:0} filter", err)

	// upsert whose filter has a stale version for an existing _id: MongoDB
	// tries to insert and fails with E11000 -- useful as a conflict signal.
	_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "u2"}, {Key: "version", Value: 0}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}}, options.UpdateOne().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		err = nil
	} else if err == nil {
		err = errors.New("expected E11000 duplicate key, got success")
	}
	report(false, "upsert with stale {_id,version} -> E11000", err)

	// --- indexes ---
	names, err := coll.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "name", Value: 1}}},
		{Keys: bson.D{{Key: "name", Value: 1}, {Key: "version", Value: -1}}, Options: options.Index().SetName("name_version")},
	})
	report(true, fmt.Sprintf("createIndexes (single + compound) %v", names), err)

	ucoll := db.Collection("slugs")
	_, err = ucoll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "slug", Value: 1}}, Options: options.Index().SetUnique(true)})
	report(true, "createIndexes unique", err)
	_, err = ucoll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "slug", Value: "x"}})
	if err == nil {
		_, err = ucoll.InsertOne(ctx, bson.D{{Key: "_id", Value: "b"}, {Key: "slug", Value: "x"}})
		if mongo.IsDuplicateKeyError(err) {
			err = nil
		} else if err == nil {
			err = errors.New("unique index not enforced")
		}
	}
	report(true, "unique index violation -> E11000", err)

	_, err = ucoll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "a"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "slug", Value: "y"}}}})
	if err == nil {
		_, err = ucoll.InsertOne(ctx, bson.D{{Key: "_id", Value: "c"}, {Key: "slug", Value: "y"}})
		if mongo.IsDuplicateKeyError(err) {
			err = nil
		} else if err == nil {
			err = errors.New("unique index not enforced after update")
		}
	}
	report(false, "unique index enforced after update", err)

	_, err = ucoll.InsertOne(ctx, bson.D{{Key: "_id", Value: "n1"}})
	if err == nil {
		_, err = ucoll.InsertOne(ctx, bson.D{{Key: "_id", Value: "n2"}})
		if err == nil {
			fmt.Println("INFO         unique index: two docs MISSING the field are both accepted (MongoDB would reject the 2nd unless sparse/partial)")
		} else if mongo.IsDuplicateKeyError(err) {
			fmt.Println("INFO         unique index: second doc missing the field rejected (MongoDB semantics)")
			err = nil
		}
	}
	report(false, "unique index with missing field", err)

	_, err = db.Collection("sparse").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "k", Value: 1}}, Options: options.Index().SetUnique(true).SetSparse(true)})
	report(false, "createIndexes unique+sparse (FerretDB silently ignores sparse)", err)
	_, err = db.Collection("partial").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "k", Value: 1}}, Options: options.Index().SetUnique(true).
		SetPartialFilterExpression(bson.D{{Key: "k", Value: bson.D{{Key: "$exists", Value: true}}}})})
	report(false, "createIndexes partialFilterExpression", err)
	_, err = db.Collection("ttl").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "at", Value: 1}}, Options: options.Index().SetExpireAfterSeconds(60)})
	report(false, "createIndexes TTL expireAfterSeconds", err)

	cur, err := coll.Indexes().List(ctx)
	if err == nil {
		var idx []bson.M
		if err = cur.All(ctx, &idx); err == nil {
			fmt.Printf("INFO         listIndexes: %d indexes\n", len(idx))
		}
	}
	report(false, "listIndexes", err)
	report(false, "dropIndexes (one)", coll.Indexes().DropOne(ctx, "name_version"))

	// --- reads ---
	got = doc{}
	err = coll.FindOne(ctx, bson.D{{Key: "_id", Value: "s1"}}).Decode(&got)
	if err == nil && (got.Version != 3 || got.Name != "third") {
		err = fmt.Errorf("read back %+v, want version 3 name third", got)
	}
	report(true, "findOne read back", err)

	for i := 0; i < 5; i++ {
		_, _ = coll.InsertOne(ctx, doc{ID: fmt.Sprintf("m%d", i), Version: int64(i), Name: "many"})
	}
	fcur, err := coll.Find(ctx, bson.D{{Key: "name", Value: "many"}, {Key: "version", Value: bson.D{{Key: "$gte", Value: 1}}}},
		options.Find().SetSort(bson.D{{Key: "version", Value: -1}}).SetSkip(1).SetLimit(2).SetProjection(bson.D{{Key: "version", Value: 1}}))
	if err == nil {
		var ds []doc
		if err = fcur.All(ctx, &ds); err == nil && (len(ds) != 2 || ds[0].Version != 3 || ds[1].Version != 2 || ds[0].Name != "") {
			err = fmt.Errorf("got %+v", ds)
		}
	}
	report(false, "find filter+$gte+sort+skip+limit+projection", err)

	n, err := coll.CountDocuments(ctx, bson.D{{Key: "name", Value: "many"}})
	if err == nil && n != 5 {
		err = fmt.Errorf("count %d", n)
	}
	report(false, "countDocuments", err)

	_, err = coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{"m1", "m2"}}}}})
	report(false, "find $in", err)

	acur, err := coll.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: "name", Value: "many"}}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$name"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err == nil {
		var out []bson.M
		err = acur.All(ctx, &out)
	}
	report(false, "aggregate $match+$group", err)

	// --- nested fields, dates, int64 ---
	ncoll := db.Collection("nested")
	now := time.Now().UTC().Truncate(time.Millisecond)
	_, err = ncoll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "meta.owner", Value: 1}, {Key: "meta.at", Value: -1}}})
	if err == nil {
		_, err = ncoll.InsertOne(ctx, bson.D{{Key: "_id", Value: "n"}, {Key: "big", Value: int64(1) << 40},
			{Key: "meta", Value: bson.D{{Key: "owner", Value: "o1"}, {Key: "at", Value: now}}}})
	}
	if err == nil {
		var m struct {
			Big  int64 `bson:"big"`
			Meta struct {
				Owner string    `bson:"owner"`
				At    time.Time `bson:"at"`
			} `bson:"meta"`
		}
		err = ncoll.FindOneAndUpdate(ctx,
			bson.D{{Key: "meta.owner", Value: "o1"}, {Key: "meta.at", Value: bson.D{{Key: "$lte", Value: now}}}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "big", Value: int64(1)}}}},
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&m)
		if err == nil && (m.Big != 1<<40+1 || !m.Meta.At.Equal(now) || m.Meta.Owner != "o1") {
			err = fmt.Errorf("got %+v", m)
		}
	}
	report(false, "dotted-field index+filter, datetime round-trip, int64 $inc", err)

	// --- other writes ---
	bw, err := coll.BulkWrite(ctx, []mongo.WriteModel{
		mongo.NewInsertOneModel().SetDocument(doc{ID: "b1", Version: 1}),
		mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: "b1"}, {Key: "version", Value: 1}}).SetUpdate(bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}}),
		mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: "m0"}}),
	})
	if err == nil && (bw.InsertedCount != 1 || bw.ModifiedCount != 1 || bw.DeletedCount != 1) {
		err = fmt.Errorf("%+v", bw)
	}
	report(false, "bulkWrite insert+update+delete", err)

	dres, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: "b1"}, {Key: "version", Value: 2}})
	if err == nil && dres.DeletedCount != 1 {
		err = fmt.Errorf("deleted %d", dres.DeletedCount)
	}
	report(false, "deleteOne {_id,version}", err)

	err = coll.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: "m1"}}).Err()
	report(false, "findOneAndDelete", err)
	err = coll.FindOneAndReplace(ctx, bson.D{{Key: "_id", Value: "m2"}}, doc{ID: "m2", Version: 9}).Err()
	report(false, "findOneAndReplace", err)

	_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "m3"}}, bson.D{
		{Key: "$max", Value: bson.D{{Key: "counter", Value: 10}}},
		{Key: "$push", Value: bson.D{{Key: "tags", Value: "a"}}},
		{Key: "$addToSet", Value: bson.D{{Key: "set", Value: "x"}}},
		{Key: "$unset", Value: bson.D{{Key: "name", Value: ""}}},
		{Key: "$currentDate", Value: bson.D{{Key: "updatedAt", Value: true}}},
	})
	report(false, "updateOne $max/$push/$addToSet/$unset/$currentDate", err)

	_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "m3"}}, mongo.Pipeline{{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}})
	report(false, "updateOne with aggregation-pipeline update", asUnsupported(err))

	// --- things we do NOT need, for the record ---
	sess, err := client.StartSession()
	if err == nil {
		_, err = sess.WithTransaction(ctx, func(sc context.Context) (any, error) {
			_, e := coll.InsertOne(sc, doc{ID: "tx1", Version: 1})
			return nil, e
		})
		sess.EndSession(ctx)
	}
	report(false, "multi-document transaction", asUnsupported(err))

	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	cs, err := coll.Watch(wctx, mongo.Pipeline{})
	if err == nil {
		cs.Close(wctx)
	}
	wcancel()
	report(false, "change stream (watch)", err)

	// --- concurrent optimistic updates on one document ---
	if *concurrency {
		raceProbe(ctx, db.Collection("race_update"), false)
		raceProbe(ctx, db.Collection("race_fam"), true)
		parallelProbe(ctx, db.Collection("parallel"))
		upsertRaceProbe(ctx, db.Collection("upsert_race"))
	}

	if coreFailed {
		fmt.Println("RESULT       core probes FAILED")
		os.Exit(1)
	}
	fmt.Println("RESULT       all core probes passed")
}

// raceProbe runs several workers that each do read-version-then-
// updateOne({_id, version}) (or findOneAndUpdate) with retry, incrementing
// "counter". If the server evaluates the filter and the write atomically,
// the final counter equals the number of successful updates.
func raceProbe(ctx context.Context, c *mongo.Collection, useFAM bool) {
	const workers, perWorker = 8, 25
	if _, err := c.InsertOne(ctx, doc{ID: "r", Version: 0}); err != nil {
		report(false, "race probe setup", err)
		return
	}
	var successes, conflicts atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; {
				var cur doc
				if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: "r"}}).Decode(&cur); err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
					return
				}
				filter := bson.D{{Key: "_id", Value: "r"}, {Key: "version", Value: cur.Version}}
				update := bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}, {Key: "counter", Value: 1}}}}
				won := false
				var err error
				if useFAM {
					err = c.FindOneAndUpdate(ctx, filter, update).Err()
					if errors.Is(err, mongo.ErrNoDocuments) {
						err = nil
					} else if err == nil {
						won = true
					}
				} else {
					var res *mongo.UpdateResult
					res, err = c.UpdateOne(ctx, filter, update)
					won = err == nil && res.ModifiedCount == 1
				}
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
					return
				}
				if won {
					successes.Add(1)
					i++
				} else {
					conflicts.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	var final doc
	err := c.FindOne(ctx, bson.D{{Key: "_id", Value: "r"}}).Decode(&final)
	if err == nil {
		err = firstErr
	}
	if err == nil && (final.Counter != successes.Load() || final.Version != successes.Load()) {
		err = fmt.Errorf("LOST UPDATES: %d calls reported success but counter=%d version=%d (conflicts detected: %d)",
			successes.Load(), final.Counter, final.Version, conflicts.Load())
	}
	if err == nil {
		fmt.Printf("INFO         race probe: %d successes, %d conflicts, counter=%d\n", successes.Load(), conflicts.Load(), final.Counter)
	}
	op := "updateOne"
	if useFAM {
		op = "findOneAndUpdate"
	}
	report(false, fmt.Sprintf("concurrent optimistic %s {_id,version} (%d workers x %d)", op, workers, perWorker), err)
}

// parallelProbe: concurrent optimistic updates on DIFFERENT documents must
// all succeed without server errors (e.g. SQLITE_BUSY).
func parallelProbe(ctx context.Context, c *mongo.Collection) {
	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("w%d", w)
			if _, err := c.InsertOne(ctx, doc{ID: id}); err != nil {
				errs[w] = err
				return
			}
			for v := int64(0); v < perWorker; v++ {
				res, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "version", Value: v}},
					bson.D{{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}})
				if err == nil && res.ModifiedCount != 1 {
					err = fmt.Errorf("%s v%d: modified %d", id, v, res.ModifiedCount)
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	report(false, fmt.Sprintf("concurrent optimistic updates on different docs (%d workers x %d)", workers, perWorker), errors.Join(errs...))
}

// upsertRaceProbe: concurrent upserts of the same new _id; exactly one must
// insert, the rest either update or fail with E11000 (MongoDB may do either).
func upsertRaceProbe(ctx context.Context, c *mongo.Collection) {
	const workers = 8
	var wg sync.WaitGroup
	var inserted, updated, dups atomic.Int64
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: "u"}},
				bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}, options.UpdateOne().SetUpsert(true))
			switch {
			case mongo.IsDuplicateKeyError(err):
				dups.Add(1)
			case err != nil:
				errs[w] = err
			case res.UpsertedCount == 1:
				inserted.Add(1)
			default:
				updated.Add(1)
			}
		}()
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil && inserted.Load() != 1 {
		err = fmt.Errorf("%d upserts inserted, want exactly 1", inserted.Load())
	}
	fmt.Printf("INFO         upsert race: inserted=%d updated=%d E11000=%d\n", inserted.Load(), updated.Load(), dups.Load())
	report(false, fmt.Sprintf("concurrent upsert of one new _id (%d workers)", workers), err)
}
