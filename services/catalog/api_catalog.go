package catalog

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	catalogv1 "github.com/accessbus/accessbus/libs/gen/accessbus/catalog/v1"
	eventsv1 "github.com/accessbus/accessbus/libs/gen/accessbus/events/v1"
)

// ListApplications implements CatalogServiceHandler.
func (a *API) ListApplications(ctx context.Context, req *connect.Request[catalogv1.ListApplicationsRequest]) (*connect.Response[catalogv1.ListApplicationsResponse], error) {
	if _, err := callerOf(ctx); err != nil {
		return nil, err
	}
	m := req.Msg
	if m.GetManaged() && m.GetUnmanaged() {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("managed and unmanaged exclude each other: give one, or neither for both"))
	}
	apps, err := a.d.Discovery.Applications(ctx)
	if err != nil {
		return nil, internal("list applications", err)
	}
	out := make([]*eventsv1.Application, 0, len(apps))
	for _, app := range apps {
		switch {
		case m.GetManaged() && !app.GetManaged(),
			m.GetUnmanaged() && app.GetManaged(),
			m.GetScimProvisioned() && !app.GetScimProvisioned():
			continue
		}
		out = append(out, app)
	}
	return connect.NewResponse(&catalogv1.ListApplicationsResponse{Applications: out}), nil
}

// application loads one application with the API's error codes.
func (a *API) application(ctx context.Context, id string) (*eventsv1.Application, error) {
	if id == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("application_id is empty: list the applications with `accessbus apps list`"))
	}
	app, err := a.d.Discovery.Application(ctx, id)
	if err != nil {
		return nil, internal("read application "+id, err)
	}
	if app == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("application %q does not exist: list them with `accessbus apps list`", id))
	}
	return app, nil
}

// GetApplication implements CatalogServiceHandler.
func (a *API) GetApplication(ctx context.Context, req *connect.Request[catalogv1.GetApplicationRequest]) (*connect.Response[catalogv1.GetApplicationResponse], error) {
	if _, err := callerOf(ctx); err != nil {
		return nil, err
	}
	app, err := a.application(ctx, req.Msg.GetApplicationId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&catalogv1.GetApplicationResponse{Application: app}), nil
}

// CreateApplication implements CatalogServiceHandler.
func (a *API) CreateApplication(ctx context.Context, req *connect.Request[catalogv1.CreateApplicationRequest]) (*connect.Response[catalogv1.CreateApplicationResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireAdmin(c, "creating an application"); err != nil {
		return nil, err
	}
	app, err := a.d.Discovery.CreateApplication(ctx, req.Msg.GetName())
	switch {
	case errors.Is(err, ErrInvalidName):
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("name: %w", err))
	case errors.Is(err, ErrApplicationExists):
		return nil, connect.NewError(connect.CodeAlreadyExists, err)
	case err != nil:
		return nil, internal("create application", err)
	}
	a.log.Info("application created", "application", app.GetId(), "name", app.GetName(), "by", c.Identity)
	return connect.NewResponse(&catalogv1.CreateApplicationResponse{Application: app}), nil
}

// MarkManaged implements CatalogServiceHandler.
func (a *API) MarkManaged(ctx context.Context, req *connect.Request[catalogv1.MarkManagedRequest]) (*connect.Response[catalogv1.MarkManagedResponse], error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireAdmin(c, "marking an application managed"); err != nil {
		return nil, err
	}
	if _, err := a.application(ctx, req.Msg.GetApplicationId()); err != nil {
		return nil, err
	}
	app, err := a.d.Discovery.MarkManaged(ctx, req.Msg.GetApplicationId())
	switch {
	case errors.Is(err, ErrApplicationNotFound):
		return nil, connect.NewError(connect.CodeNotFound, err)
	case err != nil:
		return nil, internal("mark application managed", err)
	}
	a.log.Info("application marked managed", "application", app.GetId(), "by", c.Identity)
	return connect.NewResponse(&catalogv1.MarkManagedResponse{Application: app}), nil
}
