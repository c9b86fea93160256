# The program behind docs/heap-profile-flame.svg (see the README's "Heap
# profiles"): a dict of a million ints to their strings and a list of
# 200 000 strings, still held when the process exits, where goheap writes
# the profile.
import _thread

d = {i: str(i) for i in range(1_000_000)}
l = ["x" * (i % 100) for i in range(200_000)]
# The interpreter frees its objects as it finalizes, before exit; a thread
# that never ends keeps these two (and what they hold) in the profile.
never = _thread.allocate_lock()
never.acquire()
_thread.start_new_thread(lambda *held: never.acquire(), (d, l))
print(len(d), len(l))
