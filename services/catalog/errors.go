package catalog

import "errors"

// Sentinel errors of the catalog's writes, checked with errors.Is.
var (
	// ErrApplicationExists: an application was already created with that name.
	ErrApplicationExists = errors.New("an application with this name exists")
	// ErrApplicationNotFound: no application has that id.
	ErrApplicationNotFound = errors.New("application not found")
	// ErrInvalidName: an application name that is empty, too long or on
	// several lines.
	ErrInvalidName = errors.New("invalid application name")
	// ErrInvalidEmail: not an email address.
	ErrInvalidEmail = errors.New("invalid email address")
)
