//! A workload's Kubernetes objects: namespace, ServiceAccount, SecretProviderClass, sample pod.
