# Shared helpers of the tests/t_*.sh scripts (sourced). Each script sets fail=0 first
# and exits with "$fail".

# check_eq <description> <got> <want>
check_eq() {
    if [ "$2" = "$3" ]; then
        echo "  ok    $1 = $2"
    else
        echo "  FAIL  $1 = $2, want $3"
        fail=1
    fi
}

# check <description> <command...>: the command must succeed
check() {
    what=$1
    shift
    if "$@"; then echo "  ok   $what"; else echo "  FAIL $what"; fail=1; fi
}
