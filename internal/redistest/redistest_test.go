package redistest

import (
	"context"
	"testing"
)

func TestStartPasswordAndRestart(t *testing.T) {
	s := Start(t, Options{Password: "pw", AppendOnly: true})
	ctx := context.Background()
	c := s.Client()
	defer c.Close()
	key := Prefix(t) + "k"
	if err := c.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	pol, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil || pol["maxmemory-policy"] != "noeviction" {
		t.Fatalf("maxmemory-policy = %v, %v; want noeviction", pol, err)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	got, err := c.Get(ctx, key).Result()
	if err != nil || got != "v" {
		t.Fatalf("after restart got %q, %v; want v (AOF on)", got, err)
	}
}
