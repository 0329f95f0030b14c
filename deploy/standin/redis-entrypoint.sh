#!/bin/sh
# As the official image does: started without a config file, Redis's protected mode would refuse
# every client but localhost, and only the compose network reaches this container.
if [ "$1" = redis-server ]; then
    shift
    set -- redis-server "$@" --protected-mode no
fi
exec "$@"
