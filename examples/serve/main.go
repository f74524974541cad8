// Command serve is a program that fires its own jobs on schedules: run its
// serve command on one machine or on several replicas sharing a PostgreSQL
// job repository, and each due time runs once.
//
//	serve serve                                SQLite batch.db, one replica; Ctrl-C stops it
//	serve serve -http 127.0.0.1:8080           the same, with the dashboard on that address
//	serve -db postgres://localhost/app serve   the same on every replica
//	serve schedules                            next due times, last fires
//	serve schedule trigger pulse               run pulse now, here
//	serve schedule pause cleanup               pause a schedule for every replica
//
// Its two jobs work on the table pulse of the job repository's database:
//
//   - pulse, every 10 seconds (PULSE_SPEC, a cron spec with seconds, changes
//     it): records the time it fired for and the process that ran it, after
//     waiting PULSE_WORK (a Go duration, default 0s), as a job that takes
//     that long would;
//   - cleanup, every night at 03:15 in Europe/Berlin: deletes the pulses
//     older than a week, in chunks of 1,000; when the schedulers were down
//     at 03:15 it runs once when they are back (misfire run-once).
//
// The dashboard lets anyone who reaches it look; it takes actions (stop,
// restart, abandon, trigger, pause) from this machine only, the rule its
// Authorize hook sets: a program served further away would check a user
// there instead.
package main

import (
	"errors"
	"net"
	"net/http"
	"os"

	"github.com/chunkwise/chunkwise/dashboard"
	"github.com/chunkwise/chunkwise/launcher"
)

func main() {
	var jobs launcher.Registry
	jobs.MustRegister("pulse", newPulse)
	jobs.MustRegister("cleanup", newCleanup)
	spec := os.Getenv("PULSE_SPEC")
	if spec == "" {
		spec = "*/10 * * * * *"
	}
	jobs.MustSchedule(launcher.Schedule{Name: "pulse", Job: "pulse", Spec: spec, Seconds: true})
	jobs.MustSchedule(launcher.Schedule{Name: "cleanup", Job: "cleanup", Spec: "15 3 * * *",
		TimeZone: "Europe/Berlin", Misfire: "run-once"})
	launcher.Program{Registry: &jobs, Dashboard: dashboard.Options{
		Title:        "serve",
		AllowActions: true,
		Authorize:    fromThisMachine,
	}}.Main()
}

// fromThisMachine allows the dashboard's actions to a browser on this
// machine only: from a loopback address, to a loopback host name (a page
// elsewhere whose name an attacker rebinds to 127.0.0.1 reaches the
// dashboard from this machine, but under its own name).
func fromThisMachine(r *http.Request, _ dashboard.Action) error {
	if loopback(r.RemoteAddr) && (loopback(r.Host) || hostname(r.Host) == "localhost") {
		return nil
	}
	return errors.New("actions are taken from the machine serve runs on only, at localhost or 127.0.0.1")
}

// loopback reports whether addr (host or host:port) is a loopback address.
func loopback(addr string) bool {
	ip := net.ParseIP(hostname(addr))
	return ip != nil && ip.IsLoopback()
}

func hostname(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
