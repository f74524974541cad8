// Package dashboard is a web dashboard over a job repository: the
// executions with filters (job, status, dates) and pages that cost the same
// however long the history, an execution's parameters, steps and
// partitions with their counts, progress, rate and ETA while they run, its
// errors and rejects, a step's history over its last runs as a chart, and
// the schedules with their next fire times.
//
// New returns an http.Handler to mount in any program; the command line's
// serve -http ADDR serves one (see launcher.Program.Dashboard). The pages
// are rendered on the server with html/template, every value escaped, and
// passwords hidden wherever they appear (a URL's, a password= in an error,
// a parameter named like a secret); the stylesheet and a few lines of
// script that reload a page while something runs are embedded.
//
// It only reads unless Options.AllowActions is set: then it shows buttons
// to stop, restart and abandon executions and to trigger, pause and resume
// schedules, each asked of Options.Authorize first, and every POST is
// refused unless it comes from the dashboard's own origin (cross-site
// request forgery: net/http's CrossOriginProtection).
package dashboard
