#!/bin/sh
# The data-processor image's process step for tests/cli/workflow_seed.sh: "processes" $INPUT and
# prints what it found as JSON.
echo "{\"processed_output\": \"3 rows of $INPUT\", \"quality_score\": 0.9}"
