// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tg_task_print: what attestation compares to know a process is still the one it attested, read
 * straight from the kernel's task in one bpf(BPF_PROG_TEST_RUN) call instead of three files of
 * /proc (stat, the exe link, the /proc/PID directory: five system calls and the text of
 * /proc/PID/stat made and parsed on every connection).
 *
 * A BPF_PROG_TYPE_SYSCALL program: it runs only when the agent calls it, never on a kernel hook,
 * and is attached nowhere. The agent writes `pid` into the context; the program fills in:
 *   - start_ns:  the thread group leader's start_boottime (ns after boot), the field /proc/PID/stat
 *                shows as field 22 in clock ticks and tg_record carries as start_ns;
 *   - dev, ino:  the running executable's inode (mm->exe_file), the file /proc/PID/exe names;
 *   - euid, egid: the effective ids of the task's objective credentials, which /proc/PID (the
 *                directory) is owned by.
 * status says which were found: TG_PRINT_OK (all), TG_PRINT_NO_TASK (no task with that pid in the
 * initial pid namespace), TG_PRINT_NO_EXE (a task without an executable: a kernel thread, or a
 * process that has exited and not been reaped). The agent reads /proc for anything but OK, so
 * every refusal keeps the reason /proc gives it.
 *
 * The ids are read through BTF-typed pointers (the verifier turns each load into one that
 * cannot fault); the task itself is held by bpf_task_from_pid() until bpf_task_release().
 * Only the members read are declared, with CO-RE relocations, which keeps the object's BTF small.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TG_PRINT_OK 0
#define TG_PRINT_NO_TASK 1
#define TG_PRINT_NO_EXE 2

struct super_block___tp {
	dev_t s_dev;
} __attribute__((preserve_access_index));

struct inode___tp {
	unsigned long i_ino;
	struct super_block___tp *i_sb;
} __attribute__((preserve_access_index));

struct file___tp {
	struct inode___tp *f_inode;
} __attribute__((preserve_access_index));

struct mm_struct___tp {
	struct file___tp *exe_file;
} __attribute__((preserve_access_index));

struct cred___tp {
	kuid_t euid;
	kgid_t egid;
} __attribute__((preserve_access_index));

struct task_struct___tp {
	struct task_struct___tp *group_leader;
	__u64 start_boottime;
	struct mm_struct___tp *mm;
	const struct cred___tp *real_cred;
} __attribute__((preserve_access_index));

extern struct task_struct___tp *bpf_task_from_pid(__s32 pid) __ksym;
extern void bpf_task_release(struct task_struct___tp *p) __ksym;

/* The context: 40 bytes, little-endian, the layout src/bpf/task-print.ts reads and writes. */
struct tg_task_print {
	__s32 pid;      /* in */
	__s32 status;   /* out: TG_PRINT_* */
	__u64 start_ns; /* out */
	__u64 dev;      /* out: the kernel's dev_t (major << 20 | minor) */
	__u64 ino;      /* out */
	__u32 euid;     /* out */
	__u32 egid;     /* out */
};

SEC("syscall")
int tg_task_print(struct tg_task_print *p)
{
	struct task_struct___tp *task = bpf_task_from_pid(p->pid);
	struct inode___tp *inode = 0;

	if (!task) {
		p->status = TG_PRINT_NO_TASK;
		return 0;
	}
	p->start_ns = task->group_leader->start_boottime;
	p->euid = task->real_cred->euid.val;
	p->egid = task->real_cred->egid.val;
	if (task->mm)
		inode = task->mm->exe_file->f_inode;
	if (inode) {
		p->dev = inode->i_sb->s_dev;
		p->ino = inode->i_ino;
		p->status = TG_PRINT_OK;
	} else {
		p->status = TG_PRINT_NO_EXE;
	}
	bpf_task_release(task);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
