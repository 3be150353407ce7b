package quota

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// TokenStatus describes an account's shared token from its Redis key metadata
// only: it never reads, decrypts or returns the token.
type TokenStatus struct {
	// Present is true when a token is stored; ExpiresIn is its remaining lifetime.
	Present   bool
	ExpiresIn time.Duration
	// Refreshing is true while one process holds the refresh lock.
	Refreshing bool
	// Failing is true when the last refresh failed and its error is still shared
	// with the fleet; FailedStatus is that answer's HTTP status (0: not HTTP).
	Failing      bool
	FailedStatus int
}

// ReadTokenStatus reads the shared token's status for clientID under prefix
// (keys.DefaultPrefix when empty) in one round trip, for health checks.
func ReadTokenStatus(ctx context.Context, rdb redis.UniversalClient, prefix, clientID string) (TokenStatus, error) {
	var (
		ttl    *redis.DurationCmd
		lock   *redis.IntCmd
		errRec *redis.StringCmd
	)
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		ttl = p.PTTL(ctx, AccountKey(prefix, clientID, "token"))
		lock = p.Exists(ctx, AccountKey(prefix, clientID, "token:lock"))
		errRec = p.Get(ctx, AccountKey(prefix, clientID, "token:error"))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return TokenStatus{}, err
	}
	st := TokenStatus{Refreshing: lock.Val() == 1}
	if d := ttl.Val(); d > 0 {
		st.Present, st.ExpiresIn = true, d
	}
	if errRec.Err() == nil {
		var rec tokenErrRecord
		_ = json.Unmarshal([]byte(errRec.Val()), &rec)
		st.Failing, st.FailedStatus = true, rec.Status
	}
	return st, nil
}
