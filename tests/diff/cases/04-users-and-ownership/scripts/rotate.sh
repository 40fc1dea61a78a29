#!/bin/sh
find /var/log/app -name '*.log' -mtime +7 -delete
