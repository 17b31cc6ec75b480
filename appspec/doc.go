// Package appspec is the app spec: Marathon's v2 App JSON (the subset
// DESIGN.md lists) plus Flotilla's fields (exposure, autoscale,
// progressDeadlineSeconds). It owns the types, Marathon's defaults and
// validation with field-precise errors, so the API, the store and the
// framework agree on one definition of an app. It does no I/O.
package appspec
