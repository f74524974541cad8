package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

// Defaults of NATSConfig.
const (
	DefaultNATSStream   = "CHUNKWISE_PARTITIONS"
	DefaultNATSSubject  = "chunkwise.partitions"
	DefaultNATSConsumer = "chunkwise-workers"
	DefaultNATSAckWait  = 30 * time.Second
)

// NATSConfig configures a NATSQueue.
type NATSConfig struct {
	// Conn is the connection to NATS. Required.
	Conn *nats.Conn
	// Stream, Subject and Consumer name the JetStream stream, the subject
	// its messages are published on, and the durable consumer the workers
	// share. Defaults DefaultNATSStream, DefaultNATSSubject, DefaultNATSConsumer.
	Stream, Subject, Consumer string
	// AckWait is how long the server waits for a worker's word on a
	// message before it delivers it to another; a worker says it is still
	// working at a third of it. Default DefaultNATSAckWait.
	AckWait time.Duration
	// Logger receives the workers' logs. Default: discard.
	Logger *slog.Logger
}

// NATSQueue is the partitions' work queue on NATS JetStream: a Dispatcher
// for the manager, and Serve for the workers.
//
// The queue is only a doorbell. A message holds a partition's ids and how
// many times it was handed out, never items; the job repository, shared by
// the manager and the workers, says what the partition is and who runs it
// (see RunPartition). So a message lost, repeated or delivered to a
// worker that was paused past its lease costs a delay at most, never a row
// written twice:
//
//   - messages are published with a Nats-Msg-Id (the partition and its
//     dispatch generation), so a publish retried after a lost answer, or
//     the manager handing out again a partition that waits behind others,
//     is stored once (within the stream's 10-minute duplicate window —
//     a stream lost with its messages forgets the ids too, and takes the
//     work again);
//   - the stream keeps a message until a worker acknowledges it (work-queue
//     retention, file storage), and one consumer, durable and shared by all
//     workers, delivers each to one worker at a time;
//   - a worker pulls one message per free slot — no backlog held back from
//     other workers — and tells the server it is still working on it while
//     the partition runs;
//   - it acknowledges the message once the partition's end is saved, or
//     once the repository says the partition is another's or has ended; a
//     worker that lost its lease does not, and the message goes to another
//     worker, which finds the partition taken and drops it;
//   - a worker shutting down hands its partitions back at a chunk boundary
//     and gives their messages back (Nak) for other workers to resume them
//     at once.
type NATSQueue struct {
	cfg  NATSConfig
	js   jetstream.JetStream
	cons jetstream.Consumer
}

// NewNATSQueue returns the queue, creating its stream and consumer if they
// do not exist, and updating them to cfg where they differ.
func NewNATSQueue(ctx context.Context, cfg NATSConfig) (*NATSQueue, error) {
	if cfg.Conn == nil {
		return nil, errors.New("nats queue: no connection")
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultNATSStream
	}
	if cfg.Subject == "" {
		cfg.Subject = DefaultNATSSubject
	}
	if cfg.Consumer == "" {
		cfg.Consumer = DefaultNATSConsumer
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultNATSAckWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("nats queue: %w", err)
	}
	// Created when missing, updated when different: every worker starting
	// does not rewrite them.
	stream := jetstream.StreamConfig{
		Name: cfg.Stream, Subjects: []string{cfg.Subject},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
		Duplicates: 10 * time.Minute,
	}
	switch s, err := js.Stream(ctx, cfg.Stream); {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		_, err = js.CreateStream(ctx, stream)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another process was quicker
			_, err = js.UpdateStream(ctx, stream)
		}
		if err != nil {
			return nil, fmt.Errorf("nats queue: stream %s: %w", cfg.Stream, err)
		}
	case err != nil:
		return nil, fmt.Errorf("nats queue: stream %s: %w", cfg.Stream, err)
	default:
		have := s.CachedInfo().Config
		if !slices.Equal(have.Subjects, stream.Subjects) || have.Retention != stream.Retention ||
			have.Storage != stream.Storage || have.Duplicates != stream.Duplicates {
			if _, err := js.UpdateStream(ctx, stream); err != nil {
				return nil, fmt.Errorf("nats queue: stream %s: %w", cfg.Stream, err)
			}
		}
	}
	consumer := jetstream.ConsumerConfig{
		Durable: cfg.Consumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: cfg.AckWait,
		MaxDeliver: -1, FilterSubject: cfg.Subject,
	}
	cons, err := js.Consumer(ctx, cfg.Stream, cfg.Consumer)
	if err == nil {
		have := cons.CachedInfo().Config
		if have.AckPolicy != consumer.AckPolicy || have.AckWait != consumer.AckWait ||
			have.MaxDeliver != consumer.MaxDeliver || have.FilterSubject != consumer.FilterSubject {
			cons, err = js.UpdateConsumer(ctx, cfg.Stream, consumer)
		}
	} else if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = js.CreateOrUpdateConsumer(ctx, cfg.Stream, consumer)
	}
	if err != nil {
		return nil, fmt.Errorf("nats queue: consumer %s: %w", cfg.Consumer, err)
	}
	return &NATSQueue{cfg: cfg, js: js, cons: cons}, nil
}

// Dispatch implements Dispatcher: it publishes w, acknowledged by
// the stream, with a message id that makes a repeated publish of the same
// generation a no-op.
func (q *NATSQueue) Dispatch(ctx context.Context, w PartitionWork) error {
	data, err := json.Marshal(w)
	if err != nil {
		return err
	}
	id := fmt.Sprintf("%d/%d/%d", w.JobExecutionID, w.StepExecutionID, w.Dispatch)
	if _, err := q.js.Publish(ctx, q.cfg.Subject, data, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("nats queue: publish partition %s: %w", w.Step, err)
	}
	return nil
}

// Serve runs partitions from the queue with l, at most slots at once,
// until ctx ends. Then it takes no more, hands the partitions running back
// at their next chunk boundary — what they committed stays, and other
// workers resume them at once — and returns when they are. owner names
// this worker (its host and process); each slot's claims are owner/slot.
// A message that does not decode is terminated: no worker could run it.
func (q *NATSQueue) Serve(ctx context.Context, l *Launcher, owner string, slots int) error {
	if slots < 1 {
		slots = 1
	}
	free := make(chan int, slots)
	for i := 1; i <= slots; i++ {
		free <- i
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	handBack := ctx.Done()
	for {
		var slot int
		select {
		case <-ctx.Done():
			return nil
		case slot = <-free:
		}
		msg, err := q.cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			free <- slot
			if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			q.cfg.Logger.Warn("nats queue: fetch", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { free <- slot }()
			q.run(context.WithoutCancel(ctx), l, fmt.Sprintf("%s/%d", owner, slot), msg, handBack)
		}()
	}
}

// run runs the partition of msg and says so to the server.
func (q *NATSQueue) run(ctx context.Context, l *Launcher, owner string, msg jetstream.Msg, handBack <-chan struct{}) {
	log := q.cfg.Logger.With("owner", owner)
	var w PartitionWork
	if err := json.Unmarshal(msg.Data(), &w); err != nil {
		log.Error("nats queue: a message that is no partition work; dropped", "error", err)
		_ = msg.Term()
		return
	}
	log = log.With("step", w.Step, "step_execution", w.StepExecutionID, "dispatch", w.Dispatch)
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(q.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	se, err := l.RunPartition(ctx, w, owner, handBack)
	switch {
	case errors.Is(err, ErrHandedBack):
		// Delivered again at once, to a worker that is not shutting down.
		log.Info("partition handed back", "read", se.ReadCount, "written", se.WriteCount)
		_ = msg.Nak()
	case errors.Is(err, repository.ErrStepClaimed), errors.Is(err, repository.ErrNotClaimable):
		log.Info("partition is another's, or ended", "reason", err)
		_ = msg.Ack()
	case se == nil && err != nil:
		// Not claimed (the repository out of reach, the job unknown here):
		// another worker, or this one later, gets it again.
		log.Warn("partition not run", "error", err)
		_ = msg.Nak()
	case err != nil && lostLease(err):
		log.Warn("partition lost to another worker", "error", err)
	default:
		log.Info("partition ended", "status", se.Status, "error", err)
		_ = msg.Ack()
	}
}

func lostLease(err error) bool {
	return errors.Is(err, batch.ErrFenced) || errors.Is(err, batch.ErrStaleVersion)
}
