# Shared by bench/bench_models.sh and bench/bench_models_gpu.sh (sourced, POSIX sh).

# The commit the reports describe: HEAD's short id, "+ uncommitted changes" when the working
# tree has modified or untracked files; outside a git checkout (a copy of the tree sent to a
# GPU machine) $COMMIT as the caller names it (make's COMMIT=...), else "unknown".
commit_label() {
    if ! c=$(git rev-parse --short HEAD 2> /dev/null); then
        echo "${COMMIT:-unknown}"
    elif [ -z "$(git status --porcelain 2> /dev/null)" ]; then
        echo "$c"
    else
        echo "$c + uncommitted changes"
    fi
}
