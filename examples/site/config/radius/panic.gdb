info locals
info args
thread apply all bt full
quit
