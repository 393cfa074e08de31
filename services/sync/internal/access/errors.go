package access

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/accessbus/accessbus/libs/subjects"
)

// Sentinel errors; check them with errors.Is.
var (
	// ErrBusy is what a Hold function wraps when it cannot hold the connector
	// now (a sync run holds its lease) and does not wait. The API answers
	// Unavailable: the caller retries later.
	ErrBusy = errors.New("access: connector is busy")
	// ErrUnknownConnector: the connector does not exist, or (without
	// Deps.Exists) has no synced state yet.
	ErrUnknownConnector = errors.New("access: unknown connector")
	// ErrUnfinishedCommit: the connector's state journal holds a commit that
	// an interrupted sync did not finish, and no Deps.Publisher was given to
	// finish it; a snapshot now would not match the ACCESS stream.
	ErrUnfinishedCommit = errors.New("access: unfinished commit in the connector's state")
	// ErrConcurrentWrite: events of the connector were published while a
	// snapshot was read, so some writer does not honour Deps.Hold.
	ErrConcurrentWrite = errors.New("access: the connector changed while the snapshot was read")
	// ErrBadPageToken: a page token that this server did not issue for the
	// same query.
	ErrBadPageToken = errors.New("access: invalid page token")
	// ErrInvalidRequest: a request field is out of range or a combination is
	// not allowed.
	ErrInvalidRequest = errors.New("access: invalid request")
)

// connectError gives err the Connect code a caller can act on. The message
// is err's, which names the connector and what was being done; it never
// holds a secret because nothing here reads one.
func connectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	code := connect.CodeInternal
	switch {
	case errors.Is(err, subjects.ErrInvalidConnectorID), errors.Is(err, ErrBadPageToken), errors.Is(err, ErrInvalidRequest):
		code = connect.CodeInvalidArgument
	case errors.Is(err, ErrUnknownConnector):
		code = connect.CodeNotFound
	case errors.Is(err, ErrBusy), errors.Is(err, ErrUnfinishedCommit):
		code = connect.CodeUnavailable
	case errors.Is(err, ErrConcurrentWrite):
		code = connect.CodeAborted
	case errors.Is(err, context.DeadlineExceeded):
		code = connect.CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = connect.CodeCanceled
	}
	return connect.NewError(code, err)
}
