"""The AWS half of the local EKS stand-in: a WSGI layer in front of moto.

Modules:
- protocol: names each request "service:Action" and renders AWS-style errors per protocol.
- faults:   fault/latency injection rules and per-operation call counters.
- kube:     a small Kubernetes REST client driven by a kubeconfig (apply, delete, TokenReview).
- eks:      EKS add-ons, add-on versions and Pod Identity associations (what moto lacks).
- eksauth:  eks-auth AssumeRoleForPodIdentity (token review -> association -> moto STS).
- agent:    the Pod Identity agent endpoint (GET /v1/credentials).
- iam:      moto IAM access-control set-up and the resource patches that make it useful.
- app:      the WSGI application tying it together with moto's DomainDispatcherApplication.
"""
