import hashlib, struct, uuid, datetime
def u(x): return uuid.UUID(int=x).bytes
def t(s):
    b=s.encode(); return struct.pack('>Q',len(b))+b
secs=1767225600; nanos=123456000
enc = b"security-chain-v1"+b"\x00"+u(0x0190c7a46f7e7d55a000000000000001)+u(0x0190c7a46f7e7d55a0000000000000aa)+t("user")+u(0x0190c7a46f7e7d55a000000000000002)+struct.pack('>Q',3)+t("UserLocked")+struct.pack('>Q',1)+struct.pack('>q',secs)+struct.pack('>I',nanos)+t('{"reason":"too many failures","secret":{"$sealed":{"ct":"gAAAA","kid":"k1"}}}')+t('{"actor":"system"}')
c=hashlib.sha256(enc).digest()
print(c.hex())
prev=bytes.fromhex("11"*32)
print(hashlib.sha256(prev+struct.pack('>Q',7)+c).hexdigest())
