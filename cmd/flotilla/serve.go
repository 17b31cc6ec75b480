package main

import "errors"

func runServe(args []string) error {
	return errors.New("not wired yet: the framework core and connection are being built (issue 4)")
}

func runDev(args []string) error {
	return errors.New("not wired yet: localmesos (issue 3) and the framework (issue 4) are being built")
}
