package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/chunkwise/chunkwise/batch"
)

// webhookTimeout bounds the notice's request, so that a webhook that does
// not answer cannot hold the end of the execution.
const webhookTimeout = 10 * time.Second

// failureNotice is the JSON body POSTed to the webhook.
type failureNotice struct {
	Job             string `json:"job"`
	ExecutionID     int64  `json:"execution_id"`
	InstanceID      int64  `json:"instance_id"`
	Status          string `json:"status"`
	ExitCode        string `json:"exit_code"`
	ExitDescription string `json:"exit_description"`
}

// failureWebhook is a job listener that POSTs a [failureNotice] to a URL
// when an execution FAILED.
type failureWebhook struct {
	url    string
	host   string // what the logs name: the URL of a webhook is often its secret
	client *http.Client
	log    *slog.Logger
}

var _ batch.AfterJobListener = (*failureWebhook)(nil)

func newFailureWebhook(rawURL string, log *slog.Logger) (*failureWebhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhook: want an http or https URL")
	}
	return &failureWebhook{url: rawURL, host: u.Host, client: &http.Client{Timeout: webhookTimeout}, log: log}, nil
}

// AfterJob sends the notice of a failed execution. A notice that cannot be
// delivered is logged: it does not change the execution's outcome.
func (w *failureWebhook) AfterJob(ctx context.Context, e *batch.JobExecution) error {
	if e.Status != batch.StatusFailed {
		return nil
	}
	body, err := json.Marshal(failureNotice{
		Job: e.JobName, ExecutionID: e.ID, InstanceID: e.InstanceID, Status: string(e.Status),
		ExitCode: e.ExitStatus.Code, ExitDescription: e.ExitStatus.Description,
	})
	if err != nil {
		return err
	}
	// The notice goes out even when the execution's context was cancelled.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		w.log.Error("webhook: failure notice not delivered", "host", w.host, "execution", e.ID, "error", redact(err))
		return nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		w.log.Error("webhook: failure notice refused", "host", w.host, "execution", e.ID, "status", resp.Status)
		return nil
	}
	w.log.Info("webhook: failure notice delivered", "host", w.host, "execution", e.ID)
	return nil
}

// redact drops the URL from a client error, which repeats it whole.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
