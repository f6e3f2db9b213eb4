"""Security on the wire: the fleet's certificate authority (`edgekube ca`), identities and the broker's ACL."""
