#!/bin/sh
# Stands in for a chat notification: prints what a message would say.
echo "notify: DAG $1 finished run $2 (region $3)"
