// Package spool is the mail queue of vsl-milter's standalone mode: it keeps
// the messages the SMTP server accepted until they are delivered, losing
// none. Each message is handed over once, complete, by Enqueue; a worker
// (Run) then runs the postq and delivery stages of the rules on it
// (policy.Resume, SEMANTICS §2, §9), and delivers its copies: maildir, mbox
// and forward through package delivery, deliver by MX lookup and SMTP with
// opportunistic STARTTLS (through the same package's SMTP client), and
// quarantine under app.dirpath. Temporary failures are retried with
// backoff; after the last retry, or after a permanent failure, the message
// goes to the dead queue and its sender gets a delivery status
// notification (RFC 3464), unless the sender is null.
//
// The package knows the spool's files, the rule stages after the queue
// and the client side of delivery. It must not know the SMTP server
// session (greeting, commands, replies, TLS, authentication): the server
// runs the stages up to preq, calls Enqueue with policy.Transaction.Save()
// and the message, and answers 250 only when Enqueue returned nil (or
// calls Quarantine for a quarantine at preq). Nor does it read the
// configuration file: the caller fills Options.
//
// # Rules after the queue
//
// The postq and delivery stages run once per message, in a worker, on a
// session rebuilt with policy.Resume (a finished status saved before the
// queue, such as faccept, still skips them). Their decisions, the client
// having been told 250 already:
//
//	continue     the recipients are delivered as the rules chose (deliver
//	             by default), with the envelope and message they left
//	discard      (a deny) the message is dropped, and logged
//	quarantine   the message goes to AppDir/<name>/, never delivered
//	refuse 5xx   every recipient fails permanently: DSN, dead queue
//	refuse 4xx   (a 4xx code, or a script error under on_error = tempfail)
//	             the message is deferred and the rules run again next time
//	delegate     the message waits in delegated/ for the filter (below);
//	             without Options.Delegator: FailDelegation, on_error
//
// # Delegation
//
// A delegate directive (SEMANTICS §7) writes delegated.eml (the message
// as the filter gets it) and delegation.json (the delegation: its id,
// stage, directive and service, the envelope and delivery choices the
// rules had made, the attempts) into the message's directory, moves it to
// delegated/, sends the message with Options.Delegator, and only then
// records it as sent, with its deadline (now + the service's timeout).
// The filter sends it back to a receiver whose Sink calls Spool.Return:
// matched by its id, the message is written to returned.eml, and a
// worker resumes the rules at the directive (Session.RestoreDelegation,
// Session.Resume). A send that fails, or a message not back by its
// deadline, is sent again after the backoff; after RetryMax retries every
// recipient fails: DSN, dead queue. Open resumes the delegated messages
// whose return is on disk and waits for the others' deadline. Each
// result is counted when Options.Metrics has a Delegation method.
//
// A DSN the spool makes runs only the delivery stage: it is routed like
// any message, but not filtered, as it comes from this host.
//
// # Delivery
//
// The recipients left to deliver are grouped by domain. A domain's MX
// records are tried in preference order (no MX: the domain itself, RFC
// 5321 §5.1; a null MX, RFC 7505: a permanent failure), each host in one
// SMTP session for all the domain's recipients, through
// delivery.Agent.Deliver as a forward target, so with its opportunistic
// STARTTLS. A recipient's 5xx is final; a 4xx or a network error is tried
// at the next host, then at the next attempt. Attempts are spaced by
// RetryPeriod, doubled each time up to an hour; after RetryMax retries the
// recipients still failing are failed. A message with failed recipients
// goes to the dead queue and its sender, unless null, gets one DSN
// listing them (multipart/report, report-type=delivery-status, from
// MAILER-DAEMON@Hostname, with the original header), itself enqueued here
// with the null sender, so that DSNs never bounce.
//
// # Layout
//
//	Dir/lock                 flock(2)ed while a process has the spool open
//	Dir/tmp/                 messages and removals in progress; emptied by Open
//	Dir/incoming/<id>/       accepted; the rules after the queue have not run
//	Dir/working/<id>/        due now, or being processed
//	Dir/deferred/<id>/       waiting for its next attempt
//	Dir/delegated/<id>/      handed to a delegate directive's filter, until it returns
//	Dir/dead/<id>/           finished with failures; kept for the administrator
//	AppDir/<name>/<id>.eml   a quarantined message: one file, its envelope as
//	                         X-VSL-/X-Envelope- header fields on top of the
//	                         message (see Quarantined)
//
// A message directory holds:
//
//	message.eml    the message as accepted; never changed
//	envelope.json  the transaction as accepted (policy.Saved); never changed
//	state.json     written once the message was processed: whether the rules
//	               ran (their verdict is then final), the envelope they left,
//	               and per recipient its transport and status (pending,
//	               delivered, failed) with the last failure; the attempts,
//	               the next attempt, why it is dead, the DSN sent
//	final.eml      the message as the rules left it, when they changed it
//	delegation.json, delegated.eml, returned.eml
//	               a delegation's record, the message sent to the filter,
//	               the message it sent back (see Delegation)
//
// # Durability
//
// Every file is written under a temporary name, fsynced, renamed into
// place, and its directory fsynced, before anything depends on it; a
// message directory enters a queue only complete (built in tmp/, then
// renamed), and moves between queues by renaming the whole directory.
// This makes the following invariant hold at every instant, and so after
// a crash or kill -9 at any point:
//
//	Every message for which Enqueue returned nil is either
//	 (a) a complete directory in incoming/, working/, deferred/ or
//	     delegated/, whose state.json (or, before any, its envelope)
//	     lists as pending every recipient not yet recorded as delivered
//	     or failed; or
//	 (b) finished: each recipient delivered (the transport said the copy
//	     was durable), discarded or quarantined by the rules, or failed, in
//	     which case the message is in dead/ and, unless the sender is null,
//	     its DSN was enqueued (itself under this invariant) before.
//
// What a message still needs is read from its own files, never from the
// queue that holds it: the queue only says when to look at it again. Open
// schedules everything in incoming/, working/, deferred/ and delegated/,
// and the processing of a message is idempotent, so a restart finishes
// every accepted message at least once. Its steps, and what a crash after each
// one costs:
//
//   - The rules run, then the plan (state.json, and final.eml first) is
//     written. A crash before: the rules run again. After: they never do.
//   - A group of copies (the local ones, one MX domain) is delivered, then
//     its results are recorded (state.json). A crash in between delivers
//     that group again: with a reply lost after the end of DATA (RFC 1047),
//     the only source of duplicate deliveries, as in any MTA.
//   - A quarantine copy is written, then the message removed. A crash in
//     between quarantines it again under the same file name.
//   - A DSN is enqueued under the id "<id>.dsn", then the message moves to
//     dead/. A crash in between finds the DSN still in the spool and does
//     not send it again, unless it was already delivered and removed.
//
// The dead queue is never emptied by the spool: its directories are for
// an administrator to read and remove.
package spool
