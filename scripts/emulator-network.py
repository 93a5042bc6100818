"""Creates on the emulator what a managed EC2 compute environment needs to exist there (an
instance profile, a VPC with a subnet, a security group) and prints them as shell exports for
the tests: BATCHGUARD_TEST_INSTANCE_ROLE, BATCHGUARD_TEST_SUBNET, BATCHGUARD_TEST_SECURITY_GROUP.

Reads the emulator's address and credentials from the environment (AWS_ENDPOINT_URL,
AWS_REGION, ...), as the tests do. Run: eval "$(python scripts/emulator-network.py)".
"""

import os

import boto3

region = os.environ.get("AWS_REGION", "us-east-1")
iam = boto3.client("iam", region_name=region)
ec2 = boto3.client("ec2", region_name=region)

name = "batchguard-test-ecs-instance"
try:
    profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Arn"]
except iam.exceptions.EntityAlreadyExistsException:
    profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Arn"]
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
group = ec2.create_security_group(
    GroupName=f"batchguard-test-{vpc}", Description="batchguard tests", VpcId=vpc
)["GroupId"]
print(f"export BATCHGUARD_TEST_INSTANCE_ROLE={profile}")
print(f"export BATCHGUARD_TEST_SUBNET={subnet}")
print(f"export BATCHGUARD_TEST_SECURITY_GROUP={group}")
