"""How much of an idle provider's resident code is code it runs: start BINARY idle, read its
resident pages (own file / other libraries / anonymous, from /proc/PID/smaps), page its
executable mapping out from outside (process_madvise(MADV_PAGEOUT), Linux >= 5.10, root), and
read them again as the idle provider touches back what it runs.
    $BOOTSTRAP_ENV_PYTHON bench/text_pageout.py target/provider/aws-csi-provider
Needs tests/env up (source tests/env/state/env.sh) for the agent endpoint. An experiment, not
a feature: it says what giving back start-up code would be worth (bench/RESULTS.md, round 4).
"""
import ctypes, os, subprocess, sys, tempfile, time
binary = sys.argv[1]
d = tempfile.mkdtemp()
env = {"PATH": os.environ["PATH"], "AWS_REGION": "us-west-2", "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"]}
p = subprocess.Popen([binary, f"--provider-volume={d}", "--pod-identity-endpoint", os.environ["POD_IDENTITY_ENDPOINT"]],
                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def rss():
    own = other = anon = 0
    real = os.path.realpath(binary); path = None
    for line in open(f"/proc/{p.pid}/smaps"):
        f = line.split()
        if len(f) >= 5 and "-" in f[0] and ":" not in f[0]:
            path = f[5] if len(f) > 5 else None
        elif f[0] == "Rss:":
            kb = int(f[1])
            if path == real: own += kb
            elif path and path.startswith("/"): other += kb
            else: anon += kb
    return own / 1024, other / 1024, anon / 1024
time.sleep(3)
print("idle: own %.2f libs %.2f anon %.2f MiB" % rss())
libc = ctypes.CDLL(None, use_errno=True)
pidfd = libc.syscall(434, p.pid, 0)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
real = os.path.realpath(binary)
vecs = []
for line in open(f"/proc/{p.pid}/maps"):
    f = line.split()
    if len(f) > 5 and f[5] == real and "x" in f[1]:
        a, b = (int(x, 16) for x in f[0].split("-"))
        vecs.append(iovec(a, b - a))
arr = (iovec * len(vecs))(*vecs)
r = libc.syscall(440, pidfd, arr, len(vecs), 21, 0)  # process_madvise(MADV_PAGEOUT)
print("pageout of its text:", r, ctypes.get_errno())
for s in (0.5, 5, 15):
    time.sleep(s)
    print("after %.1fs more: own %.2f libs %.2f anon %.2f MiB" % ((s,) + rss()))
p.terminate(); p.wait()
