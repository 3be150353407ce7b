package sentinel_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"shfleet/sentinel"
	"shfleet/sentinel/sentineltest"
)

// invalidatingSource fetches a fresh token when it has none and records the tokens
// it was asked to invalidate, like quota.SharedTokenSource does fleet-wide.
type invalidatingSource struct {
	cfg         sentinel.Config
	mu          sync.Mutex
	tok         *oauth2.Token
	invalidated []string
}

func (s *invalidatingSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok == nil {
		t, err := sentinel.FetchToken(context.Background(), s.cfg)
		if err != nil {
			return nil, err
		}
		s.tok = t
	}
	return s.tok, nil
}

func (s *invalidatingSource) Invalidate(_ context.Context, accessToken string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalidated = append(s.invalidated, accessToken)
	if s.tok != nil && s.tok.AccessToken == accessToken {
		s.tok = nil
	}
	return nil
}

func TestClientInvalidatesRejectedTokenAndRetriesOnce(t *testing.T) {
	sim := sentineltest.NewServer(sentineltest.Config{})
	defer sim.Close()
	src := &invalidatingSource{cfg: sim.ClientConfig()}
	client := sentinel.NewClient(sim.ClientConfig(), src)
	ctx := context.Background()

	first, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	sim.ExpireTokens() // the server now rejects the token the source holds
	resp, err := client.Process.Do(ctx, simProcess())
	if err != nil {
		t.Fatalf("Do after revocation: %v (want a transparent refresh)", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Close()
	if len(src.invalidated) != 1 || src.invalidated[0] != first.AccessToken {
		t.Fatalf("invalidated %d tokens, want exactly the rejected one", len(src.invalidated))
	}
	if got := sim.Stats().TokensIssued; got != 2 {
		t.Fatalf("tokens issued = %d, want 2 (initial + one refresh)", got)
	}

	// A source that keeps handing out rejected tokens gets one retry, then the 401.
	sim.ExpireTokens()
	stuck := &invalidatingSource{cfg: sim.ClientConfig(), tok: first}
	stuckClient := sentinel.NewClient(sim.ClientConfig(), stuckSource{stuck})
	_, err = stuckClient.Process.Do(ctx, simProcess())
	var auth *sentinel.AuthError
	if !errors.As(err, &auth) {
		t.Fatalf("err = %v, want *AuthError after one retry", err)
	}
	if len(stuck.invalidated) != 1 {
		t.Fatalf("invalidations = %d, want 1 (retry once, not forever)", len(stuck.invalidated))
	}
}

// stuckSource never drops its token, whatever Invalidate is told.
type stuckSource struct{ s *invalidatingSource }

func (s stuckSource) Token() (*oauth2.Token, error) { return s.s.tok, nil }
func (s stuckSource) Invalidate(ctx context.Context, tok string) error {
	s.s.mu.Lock()
	defer s.s.mu.Unlock()
	s.s.invalidated = append(s.s.invalidated, tok)
	return nil
}
