#!/bin/sh
# The reproduction driver end to end on phantom data with the "tiny" profile
# (repro/smoke-test.sh): the whole chain prep -> seg-real -> vae -> ddpm -> synth ->
# seg-mixed -> eval -> report runs (no stage blocked once sdseg has every command it needs;
# before that, blocked stages name what is missing), and a second run skips every finished stage.
set -eu
BUILD=${BUILD:-build} sh "$(dirname "$0")/../repro/smoke-test.sh" > "${TMPDIR:-/tmp}/sdseg-repro-smoke.$$" 2>&1 || {
    cat "${TMPDIR:-/tmp}/sdseg-repro-smoke.$$"; rm -f "${TMPDIR:-/tmp}/sdseg-repro-smoke.$$"; exit 1; }
grep "^smoke-test" "${TMPDIR:-/tmp}/sdseg-repro-smoke.$$"
rm -f "${TMPDIR:-/tmp}/sdseg-repro-smoke.$$"
