#!/bin/sh
# Reloads the nftables ruleset when a rule file changes (sample site for config-backup).
set -eu
RULES_DIR=${RULES_DIR:-/etc/nftables.d}
MAIN=${MAIN:-$RULES_DIR/rgz-main.nft}

last=""
while true; do
    now=$(cat "$RULES_DIR"/*.nft | sha256sum | cut -d' ' -f1)
    if [ "$now" != "$last" ]; then
        if nft -c -f "$MAIN"; then
            nft -f "$MAIN" && logger -t watch_config "ruleset reloaded ($now)"
            last=$now
        else
            logger -t watch_config "ruleset rejected by nft -c; keeping the running one"
        fi
    fi
    sleep 5
done
