module github.com/accessbus/accessbus/services/provisioning

go 1.26

require github.com/accessbus/accessbus/libs v0.0.0

replace github.com/accessbus/accessbus/libs => ../../libs
