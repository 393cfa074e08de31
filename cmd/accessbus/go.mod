module github.com/accessbus/accessbus/cmd/accessbus

go 1.26

require (
	github.com/accessbus/accessbus/libs v0.0.0
	github.com/accessbus/accessbus/services/catalog v0.0.0
	github.com/accessbus/accessbus/services/notifier v0.0.0
	github.com/accessbus/accessbus/services/provisioning v0.0.0
	github.com/accessbus/accessbus/services/sync v0.0.0
)

replace (
	github.com/accessbus/accessbus/libs => ../../libs
	github.com/accessbus/accessbus/services/catalog => ../../services/catalog
	github.com/accessbus/accessbus/services/notifier => ../../services/notifier
	github.com/accessbus/accessbus/services/provisioning => ../../services/provisioning
	github.com/accessbus/accessbus/services/sync => ../../services/sync
)
