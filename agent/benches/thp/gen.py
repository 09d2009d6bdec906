# The nat table of benches/ruleset.rs (N Services x 5 endpoints) as iptables-restore text, for thp.c.
import sys
n=int(sys.argv[1]); E=5
A="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
M=(1<<64)-1
def suf(k,i):
    x=((i*0x9E3779B97F4A7C15)&M)^k; s=""
    for _ in range(16):
        s+=A[x%32]; x=x//32+k*7+1
    return s
o=[]
o.append("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n")
for i in range(n):
    o.append(":KUBE-SVC-%s - [0:0]\n"%suf(1,i))
    for e in range(E): o.append(":KUBE-SEP-%s - [0:0]\n"%suf(2,i*E+e))
o.append("-A OUTPUT -j KUBE-SERVICES\n-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n")
for i in range(n):
    a,b=10+i//65536,i%65536
    o.append('-A KUBE-SERVICES -d 10.%d.%d.%d/32 -p tcp -m comment --comment "ns%d/svc%d:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-%s\n'%(a,b//256,b%256,i,i,suf(1,i)))
for i in range(n):
    svc=suf(1,i)
    o.append('-A KUBE-SVC-%s ! -s 10.0.0.0/8 -p tcp -m comment --comment "ns%d/svc%d:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ\n'%(svc,i,i))
    for e in range(E):
        sep=suf(2,i*E+e); left=E-e
        if left>1: o.append('-A KUBE-SVC-%s -m comment --comment "ns%d/svc%d:http -> ep%d" -m statistic --mode random --probability %.11f -j KUBE-SEP-%s\n'%(svc,i,i,e,1.0/left,sep))
        else: o.append('-A KUBE-SVC-%s -m comment --comment "ns%d/svc%d:http -> ep%d" -j KUBE-SEP-%s\n'%(svc,i,i,e,sep))
        j=i*E+e; ep="172.%d.%d.%d"%(16+j//65536%16,j//256%256,j%256)
        o.append('-A KUBE-SEP-%s -s %s/32 -m comment --comment "ns%d/svc%d:http" -j KUBE-MARK-MASQ\n'%(sep,ep,i,i))
        o.append('-A KUBE-SEP-%s -p tcp -m comment --comment "ns%d/svc%d:http" -m tcp -j DNAT --to-destination %s:8080\n'%(sep,i,i,ep))
o.append("COMMIT\n")
sys.stdout.write("".join(o))
