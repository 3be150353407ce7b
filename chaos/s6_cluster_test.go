//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"shfleet/internal/redistest"
)

// startCluster starts three cluster-enabled redis-servers, joins them with
// redis-cli --cluster create (no replicas) and returns a cluster REDIS_URL.
func startCluster(t *testing.T) (string, []string) {
	t.Helper()
	var addrs []string
	for i := 0; i < 3; i++ {
		// The config file is relative to each server's own --dir.
		s := redistest.Start(t, redistest.Options{Args: []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"}})
		addrs = append(addrs, s.Addr)
	}
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				t.Fatalf("cluster node %s not ok after 30 s: %v %s", a, err, info)
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.Close()
	}
	return fmt.Sprintf("redis://%s?addr=%s&addr=%s", addrs[0], addrs[1], addrs[2]), addrs
}

// TestRedisCluster runs a job on workers whose Redis is a three-node Redis
// Cluster, under a requests policy tight enough that the fleet-wide limiter sets
// the pace: it completes with zero 429s.
func TestRedisCluster(t *testing.T) {
	url, addrs := startCluster(t)
	t.Logf("REDIS_URL=%s", url)
	f := newFleetPolicies(t, url, []string{"requests:60:PT1M", "pu:3000:PT1M"})
	for i := 0; i < 3; i++ {
		f.startWorker()
	}
	out := t.TempDir()
	spec, tiles := jobSpec(t, smallArea, june, july, out)
	start := time.Now()
	job, err := f.ctl.Submit(context.Background(), spec, tiles)
	if err != nil {
		t.Fatalf("submit on Redis Cluster: %v", err)
	}
	job = f.waitFinal(job.ID, 3*time.Minute)
	v := f.verify("redis-cluster", job, tiles, out, start)
	f.assertClean(v)
	if v.RateLimited != 0 {
		t.Errorf("%d 429s on Redis Cluster, want 0: the limiter's state must be shared across the cluster", v.RateLimited)
	}
	var sizes []int64
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		n, err := c.DBSize(context.Background()).Result()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, n)
	}
	t.Logf("keys per cluster node: %v", sizes)
	if v.Duplicates != 0 {
		t.Errorf("%d process requests served twice: %v", v.Duplicates, v.DuplicateKeys)
	}
}
