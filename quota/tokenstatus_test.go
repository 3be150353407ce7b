package quota_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"shfleet/internal/redistest"
	"shfleet/quota"
	"shfleet/quota/sentinelquota"
	"shfleet/sentinel/sentineltest"
)

func TestReadTokenStatus(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	defer rdb.Close()
	sim := sentineltest.NewServer(sentineltest.Config{TokenTTL: time.Hour})
	defer sim.Close()
	cfg := sim.ClientConfig()
	prefix := strings.TrimSuffix(redistest.Prefix(t), ":")
	ctx := context.Background()

	st, err := quota.ReadTokenStatus(ctx, rdb, prefix, cfg.ClientID)
	if err != nil || st.Present || st.Refreshing || st.Failing {
		t.Fatalf("before any token: %+v, %v; want nothing", st, err)
	}
	src, err := quota.NewSharedTokenSource(quota.TokenConfig{Redis: rdb, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		Upstream: sentinelquota.Upstream(cfg), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.TokenContext(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = quota.ReadTokenStatus(ctx, rdb, prefix, cfg.ClientID)
	if err != nil || !st.Present || st.ExpiresIn <= 50*time.Minute || st.ExpiresIn > time.Hour || st.Failing {
		t.Fatalf("after a token: %+v, %v; want present, about an hour left", st, err)
	}
	srv.Stop()
	if _, err := quota.ReadTokenStatus(ctx, rdb, prefix, cfg.ClientID); err == nil {
		t.Fatal("Redis down: want an error")
	}
}
