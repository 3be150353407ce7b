package sentinel

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// Media types of Process API answers.
const (
	// MediaTypeTar is the Accept type of a request with several responses.
	MediaTypeTar = "application/tar"
	// DefaultResponseFormat is the format of a response that names none.
	DefaultResponseFormat = "image/png"
)

// ProcessService is the Process API.
type ProcessService struct {
	client *Client
}

// ProcessResponse is a successful Process API answer. Body streams from the network
// and is never buffered: the caller must read it to the end and close it. A body
// cut short by the server (fewer bytes than Content-Length) makes Read return an
// error (io.ErrUnexpectedEOF from net/http), never a silent io.EOF, so a truncated
// image is never mistaken for a complete one.
type ProcessResponse struct {
	// Body is the image, or a tar of every response when several were requested
	// (see [SplitTar]).
	Body io.ReadCloser
	// ContentType is the Content-Type of the answer.
	ContentType string
	// ContentLength is the announced length, -1 when unknown.
	ContentLength int64
	// PUSpent is X-ProcessingUnits-Spent, the PU the request was charged.
	PUSpent float64
	// HasPUSpent is true when the server sent X-ProcessingUnits-Spent.
	HasPUSpent bool
	// Header holds all response headers (e.g. X-RateLimit-Remaining).
	Header http.Header
}

// Close closes the body.
func (r *ProcessResponse) Close() error { return r.Body.Close() }

// acceptFor is the Accept header of req: the single response's format, or
// application/tar when there are several responses.
func acceptFor(req ProcessRequest) string {
	switch len(req.Output.Responses) {
	case 0:
		return DefaultResponseFormat
	case 1:
		if t := req.Output.Responses[0].Format.Type; t != "" {
			return t
		}
		return DefaultResponseFormat
	}
	return MediaTypeTar
}

// Do validates req with [ValidateProcessRequest], sends it and returns the answer
// with its body still streaming. Non-2xx answers are typed errors
// ([*RateLimitError], [*ForbiddenError], [*AuthError], [*APIError]); a failed
// token fetch is a [*TokenError].
func (s *ProcessService) Do(ctx context.Context, req ProcessRequest) (*ProcessResponse, error) {
	if err := ValidateProcessRequest(req); err != nil {
		return nil, fmt.Errorf("process request: %w", err)
	}
	dep := DeploymentMain
	if len(req.Input.Data) > 0 {
		dep = deploymentOf(req.Input.Data[0].Type)
	}
	resp, err := s.client.send(ctx, http.MethodPost, dep, s.client.cfg.APIPaths.Process, req, acceptFor(req))
	if err != nil {
		return nil, fmt.Errorf("process request: %w", err)
	}
	pr := &ProcessResponse{
		Body:          resp.Body,
		ContentType:   resp.Header.Get("Content-Type"),
		ContentLength: resp.ContentLength,
		Header:        resp.Header,
	}
	pr.PUSpent, pr.HasPUSpent = ParsePUSpent(resp.Header)
	return pr, nil
}
