package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// mongoURI (-mongo): storyflow serve runs on this MongoDB server instead
// of the embedded store, in a fresh database (serveMongo) dropped at the
// end. make bench-mongo gives it a FerretDB on loopback, whose speed is
// FerretDB's (SQLite, a collection scan per query), not MongoDB's.
var mongoURI, serveMongo string

// freshMongo returns uri with a new database name and a function that
// drops that database.
func freshMongo(uri string) (string, func(), error) {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
		return "", nil, fmt.Errorf("-mongo %q: not a mongodb:// URI", uri)
	}
	var b [4]byte
	rand.Read(b[:])
	db := "storyflow_bench_" + hex.EncodeToString(b[:])
	u.Path = "/" + db
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client, err := mongo.Connect(options.Client().ApplyURI(uri))
		if err != nil {
			return
		}
		defer client.Disconnect(ctx)
		client.Database(db).Drop(ctx)
	}
	return u.String(), drop, nil
}
