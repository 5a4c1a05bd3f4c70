# The handler the bootstrap sources: an answer that holds the event, the runtime's pid ($$ is
# the bootstrap's shell, also in the $(...) that runs this) and what the function was told; an event with "crash" ends the runtime, with "fail" the handler fails,
# with "sleep" it hangs (a child of its own included) past any timeout.
handler() {
    case "$1" in
    *'"crash"'*) echo "crashing on purpose" >&2; kill -9 $$ ;;
    *'"fail"'*) echo "failing on purpose" >&2; return 3 ;;
    *'"sleep"'*) sleep 600 & wait ;;
    esac
    printf '{"event":%s,"pid":%s,"name":"%s","memory":"%s","stage":"%s"}' "$1" "$$" \
        "$AWS_LAMBDA_FUNCTION_NAME" "$AWS_LAMBDA_FUNCTION_MEMORY_SIZE" "${STAGE:-}"
}
