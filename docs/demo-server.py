import socket, time, os
def L(fam, addr, port, v6only=None):
    s = socket.socket(fam)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((addr, port)); s.listen(); return s
ssh = L(socket.AF_INET, '0.0.0.0', 22)
pg = L(socket.AF_INET, '127.0.0.1', 5432)
web = L(socket.AF_INET6, '::', 443, 0)
alt = L(socket.AF_INET, '10.20.0.5', 8080)
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); dns.bind(('127.0.0.53', 53))
old = L(socket.AF_INET, '127.0.0.1', 9000)   # a server that just restarted: TIME_WAIT
c = socket.create_connection(('127.0.0.1', 9000)); a, _ = old.accept(); a.close(); c.close(); old.close()
clients = [socket.create_connection(('::1', 443)) for _ in range(3)]
accepted = [web.accept()[0] for _ in range(3)]
os.fork()   # a pre-fork pair sharing every socket
time.sleep(600)
