#!/bin/sh
cat /app/data/greeting.txt
